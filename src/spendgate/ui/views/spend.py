"""(placeholder)"""

PAGES = ()
