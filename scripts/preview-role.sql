-- The pull-request preview's database role: reads every row of the store, writes nothing
-- (docs/guides/pull-requests.md, "Setting it up"). Run by the tables' owner after the stack's first
-- `pulumi up`, once per database:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -v password="$PREVIEW_ROLE_PASSWORD" -f scripts/preview-role.sql
-- With a tablePrefix, prefix each table name; on PostgreSQL 14 and older also
-- REVOKE CREATE ON SCHEMA public FROM PUBLIC.
CREATE ROLE tenant_secrets_preview LOGIN PASSWORD :'password';
GRANT USAGE ON SCHEMA public TO tenant_secrets_preview;
GRANT SELECT ON companies, company_secrets, company_secret_versions TO tenant_secrets_preview;
CREATE POLICY tenant_secrets_preview_read ON company_secrets FOR SELECT TO tenant_secrets_preview USING (true);
CREATE POLICY tenant_secrets_preview_read ON company_secret_versions FOR SELECT TO tenant_secrets_preview USING (true);
