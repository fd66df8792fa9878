"""The API's routes, one module per resource; `api_router` holds them all."""

from fastapi import APIRouter

from fournil.api.routers import forecasts, health, metrics, models, predict

api_router = APIRouter()
for module in (health, metrics, forecasts, predict, models):
    api_router.include_router(module.router)
