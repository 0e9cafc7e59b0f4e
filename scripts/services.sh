#!/usr/bin/env bash
# Make sure the PostgreSQL, Redis and RabbitMQ the tests use are running: start them when
# they are installed but stopped, and say clearly what is missing otherwise.
set -u
PG_HOST=${RAVEL_TEST_PG_HOST:-127.0.0.1}
PG_PORT=${RAVEL_TEST_PG_PORT:-5432}
REDIS_HOST=${RAVEL_TEST_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${RAVEL_TEST_REDIS_PORT:-6379}
RABBIT_HOST=${RAVEL_TEST_RABBIT_HOST:-127.0.0.1}
RABBIT_PORT=${RAVEL_TEST_RABBIT_PORT:-5672}

up() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_up() {
  for _ in $(seq 1 50); do up "$1" "$2" && return 0; sleep 0.2; done
  return 1
}

missing=0
if ! up "$PG_HOST" "$PG_PORT"; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  if ! wait_up "$PG_HOST" "$PG_PORT"; then
    echo "services: PostgreSQL is not running at $PG_HOST:$PG_PORT and could not be started." >&2
    echo "          Install it (apt-get install postgresql) or start it, with trust auth for" >&2
    echo "          user postgres and a database named 'test'." >&2
    missing=1
  fi
fi
if ! up "$REDIS_HOST" "$REDIS_PORT"; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis"
    mkdir -p /tmp/ravel-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir /tmp/ravel-redis --logfile /tmp/ravel-redis/redis.log || true
  fi
  if ! wait_up "$REDIS_HOST" "$REDIS_PORT"; then
    echo "services: Redis is not running at $REDIS_HOST:$REDIS_PORT and could not be started." >&2
    echo "          Install it (apt-get install redis-server) or start it." >&2
    missing=1
  fi
fi
if ! up "$RABBIT_HOST" "$RABBIT_PORT"; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "services: starting RabbitMQ"
    rabbitmq-server -detached || true
  fi
  # A RabbitMQ node takes a few seconds to boot.
  for _ in $(seq 1 3); do wait_up "$RABBIT_HOST" "$RABBIT_PORT" && break; done
  if ! up "$RABBIT_HOST" "$RABBIT_PORT"; then
    echo "services: RabbitMQ is not running at $RABBIT_HOST:$RABBIT_PORT and could not be started." >&2
    echo "          Install it (apt-get install rabbitmq-server) or start it, with the default" >&2
    echo "          guest/guest user (the tests create a virtual host each with rabbitmqctl)." >&2
    missing=1
  fi
fi
if up "$RABBIT_HOST" "$RABBIT_PORT" && ! command -v rabbitmqctl >/dev/null 2>&1; then
  echo "services: rabbitmqctl is not installed; the RabbitMQ tests use it to create their" >&2
  echo "          virtual hosts. Install it with: apt-get install rabbitmq-server" >&2
  missing=1
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "services: redis-server is not installed; the broker-loss tests start a private one." >&2
  echo "          Install it with: apt-get install redis-server" >&2
  missing=1
fi
exit $missing
