"""The HTTP administration API (FastAPI, served by uvicorn in the node's event loop).

``app`` builds the application, ``routes/`` holds the operations,
``schemas`` their JSON bodies and ``server`` the node service that serves it
all on ``[api] listen``. The runtime builds the :class:`deps.ApiContext` it
serves; the bearer tokens are kept by :mod:`lightmail.accounts.tokens`.
"""
