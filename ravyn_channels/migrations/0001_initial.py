from typing import ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(
            name="TokenGeneration",
            fields=[
                ("user_key", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("generation", models.PositiveBigIntegerField(default=0)),
            ],
            options={"verbose_name": "websocket token generation"},
        ),
    ]
