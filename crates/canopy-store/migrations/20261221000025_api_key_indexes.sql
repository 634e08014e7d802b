-- A person's API keys and a workspace's are listed through an index of their
-- own, in id order (issue 13: the list walked every key of the installation),
-- and deleting a user or a workspace finds its keys the same way.
CREATE INDEX api_keys_creator ON api_keys (created_by_id, id);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, id);
