"""Pure functions from a session and the catalog to desired objects and observed status (floor 3).

Nothing here calls the API: the operator observes, calls these, and applies what they return.
"""
