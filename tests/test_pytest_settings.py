"""The test run's own settings: every test has a time limit (pytest-timeout), so a hang fails instead of stalling."""


def test_every_test_has_a_time_limit(request):
    assert request.config.pluginmanager.hasplugin("timeout")
    assert float(request.config.getini("timeout")) == 600
