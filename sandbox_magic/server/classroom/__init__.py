"""A whole class on one local server: keys, scoping, quotas, fairness, a dashboard.

- `keys`: per-student keys, stored hashed in ``<state-dir>/keys.db``;
- `quotas`: per-key limits (server flags, overridable per key);
- `tenancy`: who is asking (`Principal`), what they own, what they may still create;
- `fairness`: fair kernel starts between keys and CPU demotion of long runs;
- `keys_routes`, `dashboard`: the ``/v1/keys`` routes and the teacher's web page;
- `cli`: ``sandbox-magic keys add|list|revoke``.
"""
