"""The service layer: plain async functions over a `Ctx` (pools, Redis, settings, media store).

Both the JSON API (`app/api`) and the web UI (`app/web`) call these; they raise
`app.services.errors.ServiceError` subclasses for refusals.
"""
