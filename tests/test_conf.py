import pytest
from django.test import override_settings

from ravyn_channels.checks import check_settings
from ravyn_channels.conf import DEFAULTS, get_settings


def test_defaults() -> None:
    with override_settings(RAVYN_CHANNELS={}):
        assert get_settings() == DEFAULTS
        assert DEFAULTS.INBOX_SIZE == 256 and DEFAULTS.MAX_MESSAGE_SIZE == 1024 * 1024


def test_override_settings_is_seen() -> None:
    with override_settings(RAVYN_CHANNELS={"INBOX_SIZE": 3}):
        assert get_settings().INBOX_SIZE == 3
    assert get_settings().INBOX_SIZE == 256


def test_non_dict_setting_is_explained() -> None:
    with override_settings(RAVYN_CHANNELS=["INBOX_SIZE"]):
        with pytest.raises(TypeError, match=r"settings\.RAVYN_CHANNELS must be a dict, got list"):
            get_settings()


def test_unknown_key_warning() -> None:
    with override_settings(RAVYN_CHANNELS={"INBOX_SIZ": 3}):
        [warning] = check_settings()
    assert warning.id == "ravyn_channels.W001"
    assert "'INBOX_SIZ'" in warning.msg


def test_fragment_limit_follows_the_message_size_unless_set() -> None:
    from ravyn_channels.conf import Settings, fragment_limit

    assert fragment_limit(Settings()) == 16384  # 1 MiB / 64
    assert fragment_limit(Settings(MAX_MESSAGE_SIZE=20 * 1024 * 1024)) == 327680
    assert fragment_limit(Settings(MAX_MESSAGE_SIZE=1000)) == 1024
    assert fragment_limit(Settings(MAX_MESSAGE_FRAGMENTS=10)) == 10
