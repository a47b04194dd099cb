"""Rollups: the ledger pre-summed by UTC hour and day, so reports and budget windows read a
few thousand rows instead of millions of events. ``plan.py`` says what they keep and which one
answers a query (pure); ``maintain.py`` adds each stored batch to them."""
