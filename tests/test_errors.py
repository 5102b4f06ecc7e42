"""Every error has a stable, unique exit code and a hint that says what to do."""

from pmhub.errors import PmhubError, all_error_classes


def test_every_error_has_a_unique_exit_code():
    codes = [cls.exit_code for cls in all_error_classes()]
    assert len(codes) == len(set(codes)), sorted(codes)


def test_every_error_has_a_hint_and_a_4xx_or_5xx_status():
    for cls in all_error_classes():
        assert cls.hint.strip(), cls.__name__
        assert 400 <= cls.http_status < 600, cls.__name__
        assert 1 <= cls.exit_code < 126, cls.__name__  # 126+ mean things to a shell


def test_instance_hint_overrides_class_hint():
    err = PmhubError("boom", hint="do this")
    assert (str(err), err.hint, PmhubError.hint != "do this") == ("boom", "do this", True)
