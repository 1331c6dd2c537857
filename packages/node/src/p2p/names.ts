/** Topic and protocol names live in the core (`wire/`), shared with the light client. */
export { protocolName, TOPIC_KINDS, type TopicKind, topicName } from '@loopchain/core'
