"""web stage: the analyst UI (live alerts page) and the JSON API, served by uvicorn.

>>> from shopwatch.store import Store
>>> app = create_app(Store("sqlite://"), token="a-long-random-api-token")
>>> sorted({route.path for route in app.routes} & {"/", "/health", "/api/alerts"})
['/', '/api/alerts', '/health']
"""

from shopwatch.web.app import WebServer, create_app, serve
from shopwatch.web.auth import Auth

__all__ = ["Auth", "WebServer", "create_app", "serve"]
