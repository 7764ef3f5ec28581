/** Largest MQTT payload either side accepts (and the hub may render for one spoke). */
export const MAX_MESSAGE_BYTES = 256 * 1024;
