import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    return torch.device(request.param)


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module: tiny batched matrices only pay threading overhead (and
    stall on a loaded machine). Use with ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- hypothesis profiles (tests/test_properties.py): HYPOTHESIS_PROFILE=ci (default) or long --------
try:
    import os as _os

    from hypothesis import HealthCheck as _HealthCheck
    from hypothesis import settings as _settings
except ImportError:       # hypothesis is in the [test] extra; without it the property tests skip
    pass
else:
    _slow_ok = [_HealthCheck.too_slow, _HealthCheck.function_scoped_fixture,
                _HealthCheck.data_too_large]
    #: CI: a few hundred examples over all property tests, the same ones on every run
    _settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                               suppress_health_check=_slow_ok, print_blob=True)
    #: `make test-properties`: thousands of random examples
    _settings.register_profile("long", max_examples=1500, deadline=None,
                               suppress_health_check=_slow_ok, print_blob=True)
    _settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "ci"))
