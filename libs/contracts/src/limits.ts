/** Largest MQTT payload either side accepts (and the hub may render for one spoke). */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/**
 * Largest MQTT packet (remaining length) the embedded broker reads: a payload
 * of MAX_MESSAGE_BYTES plus room for the topic and MQTT 5 properties. A
 * packet announcing more is refused from its fixed header, before its body is
 * read. The shipped Mosquitto config sets `max_packet_size` to the same value.
 */
export const MAX_PACKET_BYTES = MAX_MESSAGE_BYTES + 4096;
