"""The dashboard: server-rendered pages (Starlette + Jinja2) at /ui on the gateway's port.

``app.py`` builds it (``create_ui_app``); ``auth.py`` gives each request its ``Viewer`` (or sends
it to the login form) and checks CSRF tokens; ``pages.py`` holds the pages; templates are in
``templates/``. Every page reads the store with the viewer's visibility (``visible=``), so a
template can only show what the query returned.
"""
