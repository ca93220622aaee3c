"""The photo-ID review page: query photos beside their candidates, decisions logged, the catalogue kept current.

Modules: `decisions` (the append-only decisions log and its replay), `session` (the queue, the matcher, the index
and the log together), `app` (the FastAPI routes, Jinja2 templates and static files of the page).
"""
