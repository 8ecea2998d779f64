"""The component library's model, renderer and credential generator (floor 1: knows no course)."""
