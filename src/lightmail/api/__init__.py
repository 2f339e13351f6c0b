"""The HTTP administration API (FastAPI, served by uvicorn in the node's event loop).

``app`` builds the application, ``routes/`` holds the operations,
``schemas`` their JSON bodies, ``tokens`` the bearer tokens and ``server``
the node service that serves it all on ``[api] listen``.
"""
