"""JupyterHub configuration of the f7t4jhub hub image (fixed: deployments give data, not code).

1. Image defaults (firecrestspawner.hubconfig.apply_defaults): FirecRESTSpawner;
   database and fallback cookie secret in /srv/jupyterhub (the data volume);
   ``JupyterHub.cleanup_servers = False`` (a hub restart keeps users' servers, which
   are Slurm jobs); the proxy runs in its own container (``should_start = False``; API
   at CONFIGPROXY_API_URL, default http://127.0.0.1:8001); the hub API on 0.0.0.0:8081
   (HUB_BIND_URL overrides).
2. The configuration file, when there is one: /etc/f7t4jhub/config/hub.yaml (or the path
   in F7T4JHUB_CONFIG), validated, with the secrets read from files in
   /etc/f7t4jhub/secrets (or F7T4JHUB_SECRETS_DIR). Format: docs/hub-config.md.
3. ESCAPE HATCH: /etc/jupyterhub/conf.d/*.py (or F7T4JHUB_CONF_D/*.py), executed in name
   order after everything above (the Helm chart's hub.extraConfig). Python: prefer the file.
4. Once JupyterHub has started, the heap it built is frozen out of the garbage
   collector's reach (firecrestspawner.gcfreeze: full collections of a hub with
   thousands of servers would stall its loop for 100+ ms); F7T4JHUB_GC_FREEZE=0: off.
5. The check: every FirecRESTSpawner setting of the result (the escape hatch's included,
   e.g. the site's environment) is checked; a wrong one stops the hub here with a
   sentence naming the setting and the fix.
"""

import firecrestspawner.api  # noqa: F401 - registers the job callback route in the hub API
from firecrestspawner.gcfreeze import freeze_after_start
from firecrestspawner.hubconfig import check_spawner, conf_d, configure

c = get_config()  # noqa: F821 - injected by JupyterHub when it loads this file

configure(c)

for _path in conf_d():
    load_subconfig(_path)  # noqa: F821 - injected by JupyterHub

check_spawner(c)
freeze_after_start()
