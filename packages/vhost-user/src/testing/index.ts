export { TestFrontend } from './test-frontend.js';
