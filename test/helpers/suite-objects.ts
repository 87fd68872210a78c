// Every role and database the suite creates: on a server of your own (DATABASE_URL) they are
// dropped at the end. ensureRole and ensureDatabase refuse names not listed here.
export const SUITE_ROLES = ['reaper_t', 'app_t', 'app2_t', 'blind_reaper_t'];
export const SUITE_DATABASES = ['exempt_db_t', 'protect_db_t'];
