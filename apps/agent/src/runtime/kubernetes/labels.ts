/**
 * Names Flotilla stamps on what it creates in a cluster. The managed-by label
 * is the ledger: the runtime lists, updates and deletes only objects that
 * carry it, and never adopts an unlabelled object of the same name.
 */
export const FIELD_MANAGER = 'flotilla-agent';

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'flotilla';
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_DEPLOYMENT = 'flotilla.dev/deployment';
export const LABEL_JOB = 'flotilla.dev/job';

/** sha256 of the rendered object without this annotation: "what Flotilla last applied". */
export const ANNOTATION_SPEC_HASH = 'flotilla.dev/spec-hash';
/** On pod templates too, so pods say which model version they serve. */
export const ANNOTATION_MODEL_VERSION = 'flotilla.dev/model-version';
export const ANNOTATION_MODEL_DIGEST = 'flotilla.dev/model-digest';
/** The ModelRef (JSON) an object runs, so the cache keeps a version that is still serving. */
export const ANNOTATION_MODEL_REF = 'flotilla.dev/model-ref';
