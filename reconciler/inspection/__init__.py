"""What a proxy is given and why, computed from a commit: Kuma's inspect views (the rules of a
dataplane per policy type with their origins, the dataplanes a policy affects). Pure functions
of the mesh model, shared by `reconciler inspect`, the API's inspect endpoints and the GUI."""
