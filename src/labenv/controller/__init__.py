"""The operator: Kopf handlers (the face) over the reconciler and the sweeper."""
