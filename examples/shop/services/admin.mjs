// admin: the back-office tool (a single replica, in one cluster).
import { serve } from './lib/app.mjs';

serve({ service: 'admin' });
