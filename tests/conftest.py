import logging

import pytest


@pytest.fixture
def rc_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Captured records of the 'ravyn_channels' logger (INFO and up)."""
    caplog.set_level(logging.INFO, logger="ravyn_channels")
    return caplog
