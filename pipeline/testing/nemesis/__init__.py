"""The seeded nemesis: an adversary that mixes faults at random and checks the whole history.

``python -m pipeline.testing.nemesis --seed N --runs 200 --duration 300 --broker redis|amqp``
(``make chaos``) starts hundreds of concurrent procurement-style agent runs and plain workflow
runs against the scripted LLM server, on three or more worker processes and a beat process,
with private PostgreSQL and broker servers behind TCP proxies. A driver plays the people
(approvals, rejections, expiries, events, cancels, operator retries); a schedule drawn from
the seed kills, stops and redeploys workers, restarts and flushes the broker, restarts
PostgreSQL, cuts and slows connections and makes the LLM fail. Afterwards the checker tests
every invariant of Ravel's promise on the database, the world stub's log, the LLM server's
counters and the logs, and the report names the seed and the runs of any violation.

Modules: :mod:`.plan` (the runs, from the seed), :mod:`.script` (the scripted model),
:mod:`.workload` (the agent and workflow the workers run), :mod:`.vendor` (the world stub),
:mod:`.driver`, :mod:`.schedule`, :mod:`.injector`, :mod:`.fleet`, :mod:`.backends`,
:mod:`.harness`, :mod:`.history`, :mod:`.checker` (with :mod:`.checks_runs` and
:mod:`.checks_effects`), :mod:`.report`, :mod:`.mutants` (deliberately broken workers).
"""
