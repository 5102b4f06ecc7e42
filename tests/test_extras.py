import pytest

from pmhub import extras
from pmhub.errors import MissingExtraError


def test_missing_extra_names_the_package_and_the_install_command(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(extras.EXTRAS, "pmhub_absent_module", ("federation", "a feature"))
    with pytest.raises(MissingExtraError) as caught:
        extras.require("pmhub_absent_module")
    assert "'pmhub_absent_module'" in caught.value.message
    assert "pip install 'pmhub[federation]'" in caught.value.hint
    assert not extras.available("pmhub_absent_module")


def test_installed_module_is_returned():
    assert extras.require("json").dumps([1]) == "[1]"
