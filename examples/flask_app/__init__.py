"""A Flask shop that takes refunds through Ravel: the blueprint (``pipeline.web.mount``) with
the signed-in user as the caller, and one Celery app for the shop's task and Ravel's steps."""
