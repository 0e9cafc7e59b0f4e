"""Integrations of Ravel with web frameworks (:mod:`pipeline.contrib.django`)."""
