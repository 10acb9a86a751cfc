"""The rule families of the decision point, one per module, each a pure function returning a
:class:`~consent.model.Vote` (``consent.pdp`` combines them)."""
