"""Route huggingface_hub's HTTP through an in-process handler: the real client code runs, no network is touched."""

import contextlib

import httpx2
from huggingface_hub.utils import _http


@contextlib.contextmanager
def mocked_hub_http(handler):
    """`handler(request) -> httpx2.Response`; every request huggingface_hub makes goes to it."""
    previous = _http._GLOBAL_CLIENT_FACTORY
    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(handler)))
    _http.close_session()
    try:
        yield
    finally:
        _http.set_client_factory(previous)
        _http.close_session()
