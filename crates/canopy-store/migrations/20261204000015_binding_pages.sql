-- A project's bindings are paged by id (GET .../bindings): the index makes a
-- page cost the same whatever the project's size.
CREATE INDEX bindings_page ON bindings (project_id, id);
