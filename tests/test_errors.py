"""Every error has a stable, unique exit code and a hint that says what to do."""

import importlib
import pkgutil

import pmhub
from pmhub.errors import PmhubError, all_error_classes


def every_error_class() -> list[type[PmhubError]]:
    """Import every pmhub module first, so errors defined in any layer are seen."""
    for module in pkgutil.walk_packages(pmhub.__path__, prefix="pmhub."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    return all_error_classes()


def test_every_error_has_a_unique_exit_code():
    classes = every_error_class()
    codes = [cls.exit_code for cls in classes]
    duplicates = {
        c: [k.__name__ for k in classes if k.exit_code == c] for c in codes if codes.count(c) > 1
    }
    assert duplicates == {}


def test_every_error_has_a_hint_and_an_error_status():
    for cls in every_error_class():
        assert cls.hint.strip(), cls.__name__
        assert 400 <= cls.http_status < 600, cls.__name__
        assert 1 <= cls.exit_code < 126, cls.__name__  # 126+ mean things to a shell
        assert cls.exit_code != 2, cls.__name__  # 2 is a usage error (click)


def test_instance_hint_overrides_class_hint():
    err = PmhubError("boom", hint="do this")
    assert (str(err), err.hint, PmhubError.hint != "do this") == ("boom", "do this", True)
