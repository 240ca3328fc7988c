// The GitHub App, built from config. Tokens are minted from it inside activities only, never stored.
import { App } from '@octokit/app';
import { Octokit } from '@octokit/core';
import type { GithubAppConfig } from './config';

export function createGithubApp(config: GithubAppConfig): App {
  return new App({
    appId: config.appId,
    privateKey: config.privateKey,
    // The API URL is configurable so tests (and GitHub Enterprise) point it elsewhere.
    Octokit: Octokit.defaults({ baseUrl: config.apiUrl }),
  });
}
