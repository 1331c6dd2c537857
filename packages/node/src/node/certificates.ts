/**
 * What a full node serves about certificates (core docs/certificates.md): the portable file of a
 * certificate — built from its stored block, the block's certificate signatures and commit, the
 * validator-set changes up to its height and a state proof of the issuer's membership in the state
 * the issuing header commits to — and evidence of its current status, proven against the state the
 * latest committed header commits to. State trees never delete nodes, so proofs against older
 * roots work as long as the node keeps its database.
 */
import {
  applyGenesis,
  type BlockResult,
  blockCertificates,
  bytesEqual,
  CERTIFICATE_STATUS_NAMES,
  type CertificateFile,
  type CertificateStatusEvidence,
  certificateId,
  certificateRecordCodec,
  certificateStatusKey,
  decode,
  type Genesis,
  genesisHash,
  MemoryKVStore,
  memberKey,
  StateTree,
  stateResult,
  type ValidatorSetChange,
} from '@loopchain/core'
import { nativeCrypto } from '../native-crypto.js'
import { RpcError, RpcErrorCode } from '../rpc/json-rpc.js'
import type { FullNode } from './full-node.js'

const genesisResults = new WeakMap<Genesis, Promise<BlockResult>>()

/** The result of the genesis state (what header 1 commits to), recomputed in memory once per genesis. */
export function genesisResult(genesis: Genesis): Promise<BlockResult> {
  let r = genesisResults.get(genesis)
  if (r === undefined) {
    r = (async () => {
      const tree = await StateTree.open(new MemoryKVStore())
      return stateResult((await applyGenesis(tree, genesis)).root)
    })()
    genesisResults.set(genesis, r)
  }
  return r
}

/** The result header `height` commits to: that of block `height − 1` (the genesis state's for height 1). */
export async function resultBefore(node: FullNode, height: number): Promise<BlockResult> {
  if (height <= 1) return genesisResult(node.options.genesis)
  const r = await node.chain.resultAt(height - 1)
  if (!r) throw new RpcError(RpcErrorCode.NotFound, `the result of block ${height - 1} is not stored`)
  return r
}

/**
 * Every validator-set change in force by `height`, each with the committed header that announced
 * it: what a verifier needs to follow the sets from the genesis to `height`.
 */
export async function setChangesUpTo(node: FullNode, height: number): Promise<ValidatorSetChange[]> {
  const out: ValidatorSetChange[] = []
  for (const s of node.validatorSetChanges.slice(1)) {
    if (s.from > height) break
    // A set in force from F was announced by header F − 1 (core docs/governance.md).
    const [block, commit] = await Promise.all([node.chain.blockAt(s.from - 1), node.chain.commitAt(s.from - 1)])
    if (!block || !commit)
      throw new RpcError(RpcErrorCode.NotFound, `the header announcing the validator set of height ${s.from} is not stored`)
    out.push({ signed: { header: block.header, commit }, next: s.set })
  }
  return out
}

/** The portable file of certificate `id`, or undefined when the registry has no such certificate. */
export async function certificateFileOf(node: FullNode, id: Uint8Array): Promise<CertificateFile | undefined> {
  const raw = await node.committedState().get(certificateStatusKey(id))
  if (raw === undefined) return undefined
  const rec = decode(certificateRecordCodec, raw)
  const [block, commit, at] = await Promise.all([
    node.chain.blockAt(rec.height),
    node.chain.commitAt(rec.height),
    node.chain.locate(rec.txHash),
  ])
  if (!block || !commit || !at || at.height !== rec.height) throw new RpcError(RpcErrorCode.NotFound, `block ${rec.height} is not stored`)
  const issued = blockCertificates(block.transactions, rec.height)
  const i = issued.findIndex((x) => x.index === at.index)
  const cert = issued[i]?.certificate
  const signature = block.certSignatures[i]
  if (cert === undefined || !bytesEqual(certificateId(cert), id)) {
    throw new RpcError(RpcErrorCode.InternalError, `the transaction recorded for this certificate does not issue it`)
  }
  if (signature === undefined || !nativeCrypto.verify(signature, id, block.header.blockKey)) {
    throw new RpcError(
      RpcErrorCode.NotFound,
      `this node's copy of block ${rec.height} carries no valid block-key signature for the certificate; ask another node`,
    )
  }
  const g = node.options.genesis
  const result = await resultBefore(node, rec.height)
  const [{ value, proof }, changes] = await Promise.all([
    node.state.prove(memberKey(cert.issuer), result.stateRoot),
    setChangesUpTo(node, rec.height),
  ])
  return {
    chain: { chainId: g.chainId, networkId: g.networkId, genesisHash: genesisHash(g) },
    certificate: cert,
    signature,
    evidence: { header: { header: block.header, commit }, changes, issuer: { result, member: value, proof } },
  }
}

/**
 * Evidence of certificate `id`'s status: the last committed header with its commit, the result it
 * commits to (that of the block before), and the proof of the registry record (or its absence) in
 * that state — "status as of height tip − 1". Undefined before the first block.
 */
export async function certificateStatusOf(
  node: FullNode,
  id: Uint8Array,
): Promise<{ evidence: CertificateStatusEvidence; status: string | null } | undefined> {
  const height = node.height
  if (height === 0) return undefined
  const [block, commit] = await Promise.all([node.chain.blockAt(height), node.chain.commitAt(height)])
  if (!block || !commit) throw new RpcError(RpcErrorCode.NotFound, `block ${height} is not stored`)
  const result = await resultBefore(node, height)
  const [{ value, proof }, changes] = await Promise.all([
    node.state.prove(certificateStatusKey(id), result.stateRoot),
    setChangesUpTo(node, height),
  ])
  const status = value === undefined ? null : CERTIFICATE_STATUS_NAMES[decode(certificateRecordCodec, value).status]
  return { evidence: { header: { header: block.header, commit }, result, record: value, proof, changes }, status }
}
