"""Default JupyterHub configuration of the f7t4jhub hub image.

Deployments replace this file (mount theirs at /etc/jupyterhub/jupyterhub_config.py,
e.g. from a ConfigMap) or keep it and add settings in /etc/jupyterhub/conf.d/*.py,
which are loaded in name order after the defaults below.

Defaults:
- spawner: firecrestspawner.spawner.FirecRESTSpawner (its FirecREST URL, system and
  credentials must come from conf.d or a replacement file);
- data (sqlite database, cookie secret) in /srv/jupyterhub, the writable data dir;
- the proxy is NOT started by the hub: configurable-http-proxy runs as its own
  container (images/chp). Its API URL comes from CONFIGPROXY_API_URL (default
  http://127.0.0.1:8001) and its token from CONFIGPROXY_AUTH_TOKEN, as JupyterHub
  reads it;
- the hub API listens on all interfaces, port 8081 (HUB_BIND_URL overrides), so the
  proxy and the compute nodes' callbacks can reach it.
"""

import glob
import os

import firecrestspawner.api  # noqa: F401 - registers the job callback route in the hub API

c = get_config()  # noqa: F821 - injected by JupyterHub when it loads this file

c.JupyterHub.spawner_class = "firecrestspawner.spawner.FirecRESTSpawner"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"
c.JupyterHub.hub_bind_url = os.environ.get("HUB_BIND_URL", "http://0.0.0.0:8081")

c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = os.environ.get("CONFIGPROXY_API_URL", "http://127.0.0.1:8001")

for _path in sorted(glob.glob("/etc/jupyterhub/conf.d/*.py")):
    load_subconfig(_path)  # noqa: F821 - injected by JupyterHub
