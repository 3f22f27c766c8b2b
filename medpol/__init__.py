"""medpol: medical coverage policies as code."""
