"""kubesim: the pieces of Doorman's Kubernetes API test server.

Modules:
  errors    -- ApiError and the Kubernetes ``Status`` object
  labels    -- label and field selector parsing/matching
  patch     -- JSON merge patch, JSON patch and strategic merge patch
  schema    -- CRD structural-schema defaulting, pruning and basic validation
  registry  -- built-in and CRD resource types, discovery, OpenAPI v3, Table output
  store     -- the versioned object store with an event history for watches
  api       -- Kubernetes object semantics (create/update/patch/delete) on the store
"""
