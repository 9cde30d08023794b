"""The example app of the README's "Long-running applications": three
endpoints, served by Starlette (`app`) and by Flask (`wsgi_app`).

- /leak keeps every request's headers in a module-level list: a leak;
- /cached fills an `lru_cache(maxsize=128)`: bounded, not a leak;
- /clean keeps nothing.
"""

import functools

from flask import Flask
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

SEEN = []


@functools.lru_cache(maxsize=128)
def price(item):
    return {"item": item, "cents": [len(item)] * 4}


async def leak(request):
    SEEN.append(dict(request.headers))
    return JSONResponse({"seen": len(SEEN)})


async def cached(request):
    return JSONResponse(price(request.query_params.get("item", "")))


async def clean(request):
    return JSONResponse({"sum": sum(range(100))})


app = Starlette(routes=[Route("/leak", leak), Route("/cached", cached), Route("/clean", clean)])

wsgi_app = Flask(__name__)


@wsgi_app.route("/leak")
def wsgi_leak():
    SEEN.append(dict(flask_request.headers))
    return {"seen": len(SEEN)}


@wsgi_app.route("/cached")
def wsgi_cached():
    return price(flask_request.args.get("item", ""))


@wsgi_app.route("/clean")
def wsgi_clean():
    return {"sum": sum(range(100))}
