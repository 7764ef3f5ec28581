/** Reported in status so the hub can show which agents run which build. Keep in step with package.json. */
export const AGENT_VERSION = '0.1.0';
