"""The timeline as data (issue 14): `model` (the pydantic, versioned, JSON-serializable
`Timeline`, every position in frames), `build` (a template and clips -> a timeline; renders
nothing) and `assets` (the separate step that renders the timeline's overlay PNGs)."""
