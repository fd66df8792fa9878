"""The baselines for the API benchmark: bare FastAPI routes returning a constant, in FastAPI's
two flavours (a `def` route runs in the thread pool, an `async def` route on the event loop)."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/constant")
def constant() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/constant-async")
async def constant_async() -> dict[str, str]:
    return {"status": "ok"}
