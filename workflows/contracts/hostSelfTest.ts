// A host's end-to-end self-test (workflows/hostSelfTest.ts): request and result.

export interface HostSelfTestRequest {
  hostId: string;
  /** Also upload the committed image to snapshot storage. */
  push: boolean;
  /** Who asks: operators only. */
  actor?: string;
}

export interface HostSelfTestResult {
  hostId: string;
  output: string;
  imageId: string;
  stored?: { ref: string; digest: string };
}
