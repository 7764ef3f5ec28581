/**
 * Teaches an external broker a spoke's MQTT credentials and its ACL (own
 * desired/commands in, own status/telemetry/events/presence out), and makes
 * it forget them on revocation. The hub calls it after enrolment commits and
 * before the agent can try the credentials, and again on revocation.
 *
 * Every method is idempotent: provisioning an existing spoke replaces its
 * password and grants, revoking an unknown one succeeds.
 */
export interface BrokerProvisioner {
  provisionSpoke(spoke: string, username: string, password: string): Promise<void>;
  revokeSpoke(spoke: string, username: string): Promise<void>;
  /** Deletes one set of credentials, leaving the spoke's grants (it is enrolled again under another username). */
  revokeCredentials(username: string): Promise<void>;
  /** Usernames of the spoke clients the broker holds, or null when it keeps none (the embedded broker asks Postgres). */
  listSpokeUsernames(): Promise<string[] | null>;
  close(): Promise<void>;
}

/**
 * The embedded broker authenticates every connection against the hub
 * database (broker-authority.ts), so there is nothing to provision.
 */
export const embeddedBrokerProvisioner: BrokerProvisioner = {
  provisionSpoke: async () => {},
  revokeSpoke: async () => {},
  revokeCredentials: async () => {},
  listSpokeUsernames: async () => null,
  close: async () => {},
};
