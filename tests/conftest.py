import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Single-threaded torch for a test module of tiny tensors: a second thread only adds synchronisation
    (and stalls badly on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
