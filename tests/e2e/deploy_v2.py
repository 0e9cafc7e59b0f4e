"""Release 2 of ``e2e_deploy`` (``RAVEL_WORKFLOWS=tests.e2e.deploy_v2``)."""

from tests.e2e.deploy_flows import define

flow = define(2)
