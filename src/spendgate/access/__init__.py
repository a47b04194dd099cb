"""Who may see and do what: users, their roles, sessions and personal tokens.

- ``visibility.py``: what a caller may see of the ledger, as data every read takes (pure);
- ``model.py``: users, role grants, and the ``Viewer`` they make (pure);
- ``passwords.py``, ``tokens.py``: argon2 password hashes; personal token and session secrets;
- ``throttle.py``: login throttling arithmetic (pure);
- ``sessions.py``: the session cookie (signed), CSRF tokens, the session policy;
- ``authenticator.py``: logins, sessions and tokens over the store (the admin API and the UI use it);
- ``accounts.py``: user management shared by the CLI and the admin API.
"""

from spendgate.access.model import GRANT_KINDS, ROLES, AccessError, Grant, User, Viewer
from spendgate.access.visibility import Visibility

__all__ = ["GRANT_KINDS", "ROLES", "AccessError", "Grant", "User", "Viewer", "Visibility"]
