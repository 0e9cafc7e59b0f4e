"""Release 1 of ``e2e_deploy`` (``RAVEL_WORKFLOWS=tests.e2e.deploy_v1``)."""

from tests.e2e.deploy_flows import define

flow = define(1)
