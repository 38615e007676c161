export * from './constants.js';
export { VhostUserError, type VhostUserErrorCode, type VhostUserErrorContext } from './errors.js';
export {
  decodeReply, decodeRequest, encodeReply, encodeRequest,
  type DecodedReply, type DecodedRequest, type EncodedMessage, type MemoryRegionDescription, type ReplyPayload, type VhostUserMessage,
} from './message.js';
export { MessageReader, type FramedMessage } from './message-reader.js';
export * from './backend/index.js';
