"""The web console at ``/console/``: staff handle tickets, supervisors watch the figures and manage accounts.

Reusable by other console pages (editors' inbox, catalog editing): :mod:`bot.console.auth` gives accounts,
sessions, CSRF and :func:`~bot.console.auth.require_role`; ``templates/base.html`` the layout (extend it, put a
link in ``{% block nav_extra %}``); :func:`bot.console.views.render` renders a page with the member, the CSRF
field and the labels. Add routes to :data:`routes` before the static mount.
"""

from __future__ import annotations

from starlette.routing import Mount

from bot.console import catalog, dossiers, editor
from bot.console.views import routes

console = Mount("/console", routes=[*dossiers.routes, *catalog.routes, *editor.routes, *routes])

__all__ = ["console", "routes"]
