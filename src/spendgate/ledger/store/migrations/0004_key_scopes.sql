-- Key scopes: which projects (x-spendgate-project) and teams (x-spendgate-team) a gateway key
-- may attribute its spend to. Before, any key that was not locked could name any project of any
-- team, so one team's key could spend another team's budget.
--   team:     the key's own team; it may name that team's projects, and the team itself.
--   org_wide: it may name any project and any team.
--   gateway_key_projects: projects of other teams it may name as well.
-- A key may always name its own default project.
ALTER TABLE gateway_keys ADD COLUMN team {text} REFERENCES teams (name);
ALTER TABLE gateway_keys ADD COLUMN org_wide {bool} NOT NULL DEFAULT FALSE;
CREATE TABLE gateway_key_projects (
    key_name {text} NOT NULL REFERENCES gateway_keys (name),
    project {text} NOT NULL REFERENCES projects (name),
    PRIMARY KEY (key_name, project)
);

-- Keys made before scopes (README "Attribution", "Upgrading a ledger"): traffic that worked keeps
-- working, and what is left open is written on the key for `spendgate keys list` to show.
-- A key with a default project belongs to that project's team ...
UPDATE gateway_keys SET team = (SELECT p.team FROM projects p WHERE p.name = gateway_keys.project)
    WHERE project IS NOT NULL;
-- ... and keeps the projects of other teams it has already attributed spend to (every
-- combination of key and project the ledger ever held is in rollup_dims, kept forever), so
-- naming them goes on working; any other team's project is refused from now on.
INSERT INTO gateway_key_projects (key_name, project)
    SELECT DISTINCT d.key_name, d.project
    FROM rollup_dims d
    JOIN gateway_keys k ON k.name = d.key_name
    JOIN projects p ON p.name = d.project
    WHERE k.team IS NOT NULL AND p.team <> k.team;
-- A key without a default project has no team to be bounded by: it stays org-wide, as it was,
-- until an admin narrows it (`spendgate keys update NAME --team T --no-org-wide`).
UPDATE gateway_keys SET org_wide = TRUE WHERE project IS NULL;
