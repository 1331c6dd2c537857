/**
 * Reading a certificate's QR code with the platform's `BarcodeDetector` (Chrome on Android and
 * ChromeOS, Safari, Edge on some systems) and the camera via `getUserMedia`. No QR decoder is
 * bundled: where the browser has no detector, the page says so and the person pastes or drops the
 * file instead, which keeps the page small.
 */

interface DetectedBarcode {
  readonly rawValue: string
}
interface BarcodeDetectorInstance {
  detect(source: ImageBitmapSource): Promise<DetectedBarcode[]>
}
interface BarcodeDetectorClass {
  new (opts: { formats: string[] }): BarcodeDetectorInstance
  getSupportedFormats(): Promise<string[]>
}

/** What this browser can do with QR codes, and why not when it cannot. */
export interface QrSupport {
  /** Can read QR codes from images (a dropped photo or screenshot). */
  readonly images: boolean
  /** Can also scan with a camera. */
  readonly camera: boolean
  /** Why scanning is not available, for the page to say. */
  readonly reason: string | undefined
}

function detectorClass(): BarcodeDetectorClass | undefined {
  return (globalThis as { BarcodeDetector?: BarcodeDetectorClass }).BarcodeDetector
}

/** Finds out what QR reading this browser supports. */
export async function qrSupport(): Promise<QrSupport> {
  const D = detectorClass()
  let formats: string[] = []
  try {
    formats = D ? await D.getSupportedFormats() : []
  } catch {
    formats = []
  }
  if (!formats.includes('qr_code')) {
    return {
      images: false,
      camera: false,
      reason: 'This browser cannot read QR codes (it has no BarcodeDetector). Paste the text under the code, or drop the certificate file.',
    }
  }
  if (!window.isSecureContext || navigator.mediaDevices?.getUserMedia === undefined) {
    return {
      images: true,
      camera: false,
      reason: 'No camera is available to this page (it needs HTTPS and a camera). You can drop a photo of the code.',
    }
  }
  return { images: true, camera: true, reason: undefined }
}

function detector(): BarcodeDetectorInstance {
  const D = detectorClass()
  if (D === undefined) throw new Error('this browser cannot read QR codes')
  return new D({ formats: ['qr_code'] })
}

/** The text of the first QR code in an image, or undefined when it has none. */
export async function readQrImage(image: Blob): Promise<string | undefined> {
  const bitmap = await createImageBitmap(image)
  try {
    return (await detector().detect(bitmap))[0]?.rawValue
  } finally {
    bitmap.close()
  }
}

// Frames examined per second: enough to feel instant, little enough for a phone's battery.
const SCAN_INTERVAL_MS = 150

/**
 * Shows the camera in `video` and resolves with the text of the first QR code it sees. Stops the
 * camera when done or when `signal` aborts (then rejects with the abort reason).
 */
export async function scanWithCamera(video: HTMLVideoElement, signal: AbortSignal): Promise<string> {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false })
  const stop = () => {
    for (const t of stream.getTracks()) t.stop()
    video.srcObject = null
  }
  try {
    video.srcObject = stream
    await video.play()
    const d = detector()
    for (;;) {
      signal.throwIfAborted()
      const found = video.readyState >= 2 ? (await d.detect(video))[0] : undefined
      if (found !== undefined) return found.rawValue
      await new Promise((r) => setTimeout(r, SCAN_INTERVAL_MS))
    }
  } finally {
    stop()
  }
}
